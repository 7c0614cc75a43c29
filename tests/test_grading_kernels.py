"""The grading kernels of course/grading/preprocessors.py talk to the grader over private Unix
sockets.

Over TCP, parallel workers race for ports: a kernel that loses fails to start with
``ZMQError: Address already in use`` and its student is not graded.
"""

import os
import tempfile

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course.grading.preprocessors import ExecuteSurvivingCrashes

pytestmark = pytest.mark.skipif(os.name != "posix", reason="Unix sockets are POSIX")

REPORT_TRANSPORT = ("from ipykernel.kernelapp import IPKernelApp\n"
                    "app = IPKernelApp.instance()\n"
                    "print(app.transport, app.ip)")


def kernel_transport_and_address():
    nb = new_notebook(cells=[new_code_cell(REPORT_TRANSPORT)])
    nb, _ = ExecuteSurvivingCrashes(timeout=60).preprocess(nb, {})
    [output] = nb.cells[0].outputs
    assert output.output_type == "stream", output
    return output.text.split()


def test_each_grading_kernel_gets_sockets_of_its_own_and_leaves_none(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    first = kernel_transport_and_address()
    second = kernel_transport_and_address()
    assert first[0] == second[0] == "ipc"
    for _, address in (first, second):
        assert os.path.isabs(address) and address.startswith(str(tmp_path)), address
    assert os.path.dirname(first[1]) != os.path.dirname(second[1])
    assert list(tmp_path.iterdir()) == [], "the sockets' folders outlive their kernels"
