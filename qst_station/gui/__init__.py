"""The Qt windows."""
