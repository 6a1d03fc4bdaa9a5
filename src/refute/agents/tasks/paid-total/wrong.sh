# sums every order, refunded and pending ones included
python3 -c '
import json
orders = json.load(open("orders.json"))["orders"]
print(round(sum(i["price"] * i["qty"] for o in orders for i in o["items"]), 2))
'
