"""meetpilot's workbench: the command line, the embedded local stack, the fakes and the simulator.

Nothing here runs in Lambda; the service (the meetpilot package) never imports it.
"""
