/* clients: token lookup by SHA-256 and the per-client project list. */
#include <string.h>

#include "clients.h"
#include "sha256.h"
#include "tap.h"

static void set_token(struct conf_client *cl, const char *token)
{
    sha256(token, strlen(token), cl->token_sha256);
}

int main(void)
{
    /* Canonical, as conf_load leaves them. */
    char *projects_a[] = {"6a1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d", "team-x", "default"};
    struct conf_client clients[2];
    struct conf c;

    memset(&c, 0, sizeof(c));
    memset(clients, 0, sizeof(clients));
    clients[0].name = "a";
    set_token(&clients[0], "token-a");
    clients[0].projects = projects_a;
    clients[0].nprojects = 3;
    clients[1].name = "b";
    set_token(&clients[1], "token-b");
    clients[1].all_projects = 1;
    c.clients = clients;
    c.nclients = 2;

    tap_ok(client_find(&c, "Bearer token-a") == &clients[0], "token a finds client a");
    tap_ok(client_find(&c, "bearer  token-b") == &clients[1],
           "the scheme is case-insensitive and spaces before the token are skipped");
    tap_ok(client_find(&c, "Bearer token-c") == NULL, "an unknown token finds nobody");
    tap_ok(client_find(&c, "Bearer ") == NULL, "an empty token finds nobody");
    tap_ok(client_find(&c, "Basic dG9rZW4tYQ==") == NULL, "another scheme finds nobody");
    tap_ok(client_find(&c, NULL) == NULL, "no Authorization finds nobody");
    tap_ok(client_find(&c, "Bearer token-a ") == NULL, "the token is compared exactly");

    tap_ok(client_allows(&clients[0], "6a1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"),
           "a listed (canonical) UUID matches");
    tap_ok(!client_allows(&clients[0], "6A1C2D3E-4F50-4A6B-8C7D-9E0F1A2B3C4D"),
           "ids are compared canonical: callers canonicalize first");
    tap_ok(!client_allows(&clients[0], "default"),
           "a request naming the project 'default' is not the key's default project");
    tap_ok(client_allows(&clients[0], "team-x"), "a listed project string matches");
    tap_ok(!client_allows(&clients[0], "TEAM-X"), "other strings match exactly");
    tap_ok(!client_allows(&clients[0], "0b9b5a8e-7f7e-4c1e-9a4e-1f2d3c4b5a60"),
           "an unlisted project is refused");
    tap_ok(client_allows(&clients[0], NULL), "'default' in the list allows the key's default project");
    clients[0].nprojects = 2;
    tap_ok(!client_allows(&clients[0], NULL), "without 'default' the key's default project is refused");
    tap_ok(client_allows(&clients[1], "anything") && client_allows(&clients[1], NULL),
           "projects = * allows every project");
    {
        uint8_t h[32];
        sha256("admin-secret", 12, h);
        tap_ok(client_token_matches("Bearer admin-secret", h), "an admin token matches");
        tap_ok(!client_token_matches("Bearer admin-secreT", h) &&
                   !client_token_matches(NULL, h) && !client_token_matches("admin-secret", h),
               "a wrong, missing or unprefixed admin token does not");
    }
    return tap_done();
}
