# corrects the start by one item instead of by one page
sed -i 's/start = number \* size/start = number * size - 1/' pages.py
