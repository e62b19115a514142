"""rcchat: a small terminal client for Rocket.Chat's REST and realtime (DDP over WebSocket) APIs.

Log in (password from a file, the environment or a prompt; never the command line), list rooms, send to a
room or a direct message, read replies as they arrive, open an interactive chat, create test users.
Only Rocket.Chat's public API is used, so it works against a real server as well as the simulator.
"""
