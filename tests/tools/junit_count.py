#!/usr/bin/python3
"""Prints "PASSED FAILED" test-case counts from meson's JUnit log (GoogleTest
cases are listed one by one because the tests use protocol 'gtest')."""
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print(0, 1)
    sys.exit(0)
passed = failed = 0
for case in root.iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None:
        failed += 1
    elif case.find("skipped") is None:
        passed += 1
print(passed, failed)
