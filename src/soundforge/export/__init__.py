"""Exports: NI Stems files, rendered mixes and file-name templates.

Below the CLI, the web app and the API, which all call the same code here.
"""
