// The embedding project's own programs (their names are what matters).
int main() { return 0; }
