"""The local testbed: a scenario stood up for real in network namespaces and measured.

DESIGN.md section 5. Nothing here is imported by the simulator; `meshsim.testbed.commands`
imports the heavy parts (Locust runs in its own process, never imported here) lazily.
"""

__all__: list[str] = []
