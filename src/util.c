#include "util.h"

size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t k, j;
    uint32_t cp, min;

    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        k = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        k = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
        k = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < k)
        return 0;
    for (j = 1; j < k; j++) {
        if ((s[j] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}
