/* One of ten translation units, so a make -j build has something to spread. */
int part4(int x) { return x * 4 + 4; }
