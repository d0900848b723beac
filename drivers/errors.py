"""Errors raised by drivers. Each message is one line that names the problem."""


class DeviceError(Exception):
    """Base class for every device problem."""


class WireError(DeviceError):
    """A frame could not be encoded or decoded (bad field, malformed reply)."""


class LimitError(DeviceError):
    """A command would break a configured safety limit; nothing was written."""


class DeviceSilent(DeviceError):
    """The device did not answer in time."""


class DeviceFault(DeviceError):
    """The device reported an error (e.g. a non-zero ``Q`` code) or replied unexpectedly."""


class PortLost(DeviceError):
    """The serial port or socket went away (unplugged, closed, simulator stopped)."""


class NotConnected(DeviceError):
    """A command was issued while the driver is not connected."""


class FieldRangeError(LimitError, WireError):
    """A value does not fit the device's own field range (e.g. 70 °C in a 0-60 °C field)."""
