import pytest

from calc import add
from calc import divide
from calc import multiply
from calc import subtract


def test_add():
    assert add(2, 3) == 5


def test_subtract():
    assert subtract(2, 3) == -1


def test_multiply():
    assert multiply(4, 3) == 12


def test_divide_by_zero():
    with pytest.raises(ZeroDivisionError):
        divide(1, 0)


def test_multiply_negative():
    assert multiply(4, -3) == -12


def test_divide():
    assert divide(7, 2) == 3.5
