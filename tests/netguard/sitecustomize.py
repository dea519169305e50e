"""Installs the test network guard in every Python process started with this folder on PYTHONPATH.

Only when ``CARTSIGHT_NETGUARD_LOG`` names the log file (see cartsight_netguard.py); Python
imports ``sitecustomize`` at start-up, before any code of the process runs.
"""
import os

if os.environ.get("CARTSIGHT_NETGUARD_LOG"):
    import cartsight_netguard

    cartsight_netguard.install(os.environ["CARTSIGHT_NETGUARD_LOG"])
