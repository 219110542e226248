/* doors: Host, Origin and Sec-Fetch-Site checks, and which listeners are
 * local. */
#include <string.h>

#include "doors.h"
#include "tap.h"

int main(void)
{
    char *hosts[] = {"gw.example", "Other.Example:8443"};
    char *origins[] = {"https://ok.example"};
    char *star[] = {"*"};
    struct conf c;

    memset(&c, 0, sizeof(c));
    tap_ok(door_local("127.0.0.1:8080") && door_local("127.3.4.5:1") &&
               door_local("[::1]:8080") && door_local("localhost:80") &&
               door_local("unix:/run/lcgate.sock"),
           "loopback addresses, localhost and Unix sockets are local listeners");
    tap_ok(!door_local("0.0.0.0:8080") && !door_local("10.0.0.5:8080") &&
               !door_local("[::]:8080") && !door_local("gw.example:80"),
           "any-address, other addresses and names are not");

    tap_ok(door_check(&c, 1, "127.0.0.1:8080", NULL, NULL) == DOOR_OPEN &&
               door_check(&c, 1, "localhost:9", NULL, NULL) == DOOR_OPEN &&
               door_check(&c, 1, "LOCALHOST", NULL, NULL) == DOOR_OPEN &&
               door_check(&c, 1, "localhost.", NULL, NULL) == DOOR_OPEN &&
               door_check(&c, 1, "[::1]:8080", NULL, NULL) == DOOR_OPEN &&
               door_check(&c, 1, "127.9.9.9", NULL, NULL) == DOOR_OPEN &&
               door_check(&c, 1, "app.localhost:1", NULL, NULL) == DOOR_OPEN,
           "loopback names pass a local listener, any port");
    tap_ok(door_check(&c, 1, "attacker.example:8080", NULL, NULL) == DOOR_BAD_HOST,
           "a rebinding name is 421 on a local listener");
    tap_ok(door_check(&c, 1, "128.0.0.1", NULL, NULL) == DOOR_BAD_HOST &&
               door_check(&c, 1, "127.0.0.1.evil.example", NULL, NULL) == DOOR_BAD_HOST &&
               door_check(&c, 1, "localhost.evil.example", NULL, NULL) == DOOR_BAD_HOST &&
               door_check(&c, 1, "[::2]", NULL, NULL) == DOOR_BAD_HOST &&
               door_check(&c, 1, "", NULL, NULL) == DOOR_BAD_HOST,
           "names that only look local are 421");
    tap_ok(door_check(&c, 0, "attacker.example", NULL, NULL) == DOOR_OPEN,
           "a shared listener without allowed_hosts serves any Host");
    tap_ok(door_check(&c, 1, NULL, NULL, NULL) == DOOR_OPEN, "no Host: open");
    c.allowed_hosts.v = hosts;
    c.allowed_hosts.n = 2;
    tap_ok(door_check(&c, 1, "GW.example:8080", NULL, NULL) == DOOR_OPEN &&
               door_check(&c, 1, "other.example", NULL, NULL) == DOOR_OPEN,
           "allowed_hosts names pass (case and port ignored)");
    tap_ok(door_check(&c, 0, "attacker.example", NULL, NULL) == DOOR_BAD_HOST &&
               door_check(&c, 0, "gw.example", NULL, NULL) == DOOR_OPEN,
           "with allowed_hosts a shared listener serves only them");
    c.allowed_hosts.v = star;
    c.allowed_hosts.n = 1;
    tap_ok(door_check(&c, 1, "anything.example", NULL, NULL) == DOOR_OPEN,
           "allowed_hosts = * allows any Host");
    c.allowed_hosts.n = 0;

    tap_ok(door_check(&c, 1, "localhost", "https://evil.example", NULL) == DOOR_CROSS_SITE,
           "an Origin not listed is 403");
    tap_ok(door_check(&c, 1, "localhost", "null", NULL) == DOOR_CROSS_SITE,
           "Origin: null is 403");
    tap_ok(door_check(&c, 1, "localhost", NULL, "cross-site") == DOOR_CROSS_SITE &&
               door_check(&c, 1, "localhost", NULL, "Same-Site") == DOOR_CROSS_SITE,
           "Sec-Fetch-Site cross-site and same-site are 403");
    tap_ok(door_check(&c, 1, "localhost", NULL, "same-origin") == DOOR_OPEN &&
               door_check(&c, 1, "localhost", NULL, "none") == DOOR_OPEN,
           "Sec-Fetch-Site same-origin and none pass");
    c.allowed_origins.v = origins;
    c.allowed_origins.n = 1;
    tap_ok(door_check(&c, 1, "localhost", "HTTPS://ok.example/", "cross-site") == DOOR_OPEN,
           "a listed Origin passes, whatever Sec-Fetch-Site says");
    tap_ok(door_check(&c, 1, "localhost", "https://ok.example.evil", NULL) == DOOR_CROSS_SITE,
           "an Origin is compared whole");
    tap_ok(door_check(&c, 1, "attacker.example", "https://ok.example", NULL) == DOOR_BAD_HOST,
           "a listed Origin does not open the Host check");
    return tap_done();
}
