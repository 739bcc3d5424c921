# Read by `flask` (through python-dotenv) so `flask listen`, `flask jobs ...` need no --app.
FLASK_APP=webapp
