"""A deliberately small calculator, with two bugs for the demo to find."""


def add(a, b):
    return a + b


def subtract(a, b):
    return a - b


def multiply(a, b):
    # Bug: repeated addition forgets negative factors.
    result = 0
    for _ in range(abs(b)):
        result += a
    return result


def divide(a, b):
    if b == 0:
        raise ZeroDivisionError("cannot divide by zero")
    # Bug: floor division where true division was meant.
    return a // b
