/* One of ten translation units, so a make -j build has something to spread. */
int part10(int x) { return x * 10 + 10; }
