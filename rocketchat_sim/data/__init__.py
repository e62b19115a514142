"""Facts the simulator reads as data: the API scope, the disabled operations, the settings registry."""
