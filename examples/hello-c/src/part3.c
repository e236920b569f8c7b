/* One of ten translation units, so a make -j build has something to spread. */
int part3(int x) { return x * 3 + 3; }
