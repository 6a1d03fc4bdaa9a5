python3 -c '
import json
orders = json.load(open("orders.json"))["orders"]
print(round(sum(i["price"] * i["qty"] for o in orders if o["status"] == "paid" for i in o["items"]), 2))
'
