"""A governance scanner: employee ids such as ``EMP-123456``.

A scanner says where a finding lies and of which type, never its value; the run's policy
decides what happens to it (``pii: {employee_id: redact}`` in a policy file, else the
policy's ``default_action``).
"""

from __future__ import annotations

import re

from polyadapt.governance.scanners import Finding


class EmployeeIdScanner:
    """``EMP-`` and six digits, as type ``employee_id``."""

    name = "employee-id"
    types = ("employee_id",)
    pattern = re.compile(r"\bEMP-\d{6}\b")

    def scan(self, text: str) -> list[Finding]:
        return [Finding("employee_id", m.start(), m.end(), self.name) for m in self.pattern.finditer(text)]
