echo 1.4.3 > VERSION
bash deploy.sh
