# counts the 404 responses, not the distinct addresses that got them
grep -c '" 404 ' access.log
