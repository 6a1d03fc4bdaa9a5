sed -i 's/start = number \* size/start = (number - 1) * size/' pages.py
python3 test_pages.py
