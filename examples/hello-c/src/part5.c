/* One of ten translation units, so a make -j build has something to spread. */
int part5(int x) { return x * 5 + 5; }
