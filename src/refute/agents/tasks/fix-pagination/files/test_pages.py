from pages import page

letters = ["a", "b", "c", "d", "e", "f", "g"]
assert page(letters, 1, 3) == ["a", "b", "c"], page(letters, 1, 3)
assert page(letters, 2, 3) == ["d", "e", "f"], page(letters, 2, 3)
print("all tests passed")
