python3 -c '
import json
teams = {}
for user in json.load(open("users.json")):
    if user["active"]:
        teams.setdefault(user["team"], []).append(user["name"])
json.dump({team: sorted(names) for team, names in teams.items()}, open("active_by_team.json", "w"), indent=2)
'
