# counts every line that mentions ERROR, whatever its level
grep -c 'ERROR' app.log > answer.txt
