# bumps the version but never deploys
sed -i 's/1.4.2/1.4.3/' VERSION
