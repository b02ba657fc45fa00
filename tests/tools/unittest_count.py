#!/usr/bin/python3
"""Runs one integration test module with unittest and prints its verbose
output, then "counts NAME PASSED FAILED" (a test case with failing subtests
counts once, as failed)."""
import importlib.util
import os
import sys
import unittest

path = sys.argv[1]
sys.path.insert(0, os.path.dirname(path))
spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
suite = unittest.defaultTestLoader.loadTestsFromModule(mod)
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
bad = {id(getattr(t, "test_case", t)) for t, _ in result.failures + result.errors}
failed = len(bad)
passed = result.testsRun - failed - len(result.skipped)
print(f"counts {os.path.basename(path)} {passed} {failed}", flush=True)
