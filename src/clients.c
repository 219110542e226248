#include "clients.h"

#include <string.h>
#include <strings.h>

#include "sha256.h"

const struct conf_client *client_find(const struct conf *c, const char *authorization)
{
    const struct conf_client *found = NULL;
    uint8_t digest[SHA256_LEN];
    size_t i, j;

    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    authorization += 7;
    while (*authorization == ' ')
        authorization++;
    if (*authorization == '\0')
        return NULL;
    sha256(authorization, strlen(authorization), digest);
    for (i = 0; i < c->nclients; i++) {
        uint8_t diff = 0;
        for (j = 0; j < SHA256_LEN; j++)
            diff |= (uint8_t)(digest[j] ^ c->clients[i].token_sha256[j]);
        if (diff == 0 && found == NULL)
            found = &c->clients[i];
    }
    return found;
}

int client_allows(const struct conf_client *cl, const char *project_id)
{
    const char *want = project_id ? project_id : CLIENT_DEFAULT_PROJECT;
    size_t i;

    if (cl->all_projects)
        return 1;
    /* Exact, but UUIDs in any case (the upstream parses them). */
    for (i = 0; i < cl->nprojects; i++)
        if (strcmp(cl->projects[i], want) == 0 ||
            (strlen(want) == 36 && strcasecmp(cl->projects[i], want) == 0))
            return 1;
    return 0;
}
