bash process.sh
