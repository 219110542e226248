#include "clients.h"

#include <string.h>
#include <strings.h>

#include "sha256.h"

/* The digest of a "Bearer <token>" value's token; -1 if it has none. */
static int bearer_digest(const char *authorization, uint8_t digest[SHA256_LEN])
{
    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return -1;
    authorization += 7;
    while (*authorization == ' ')
        authorization++;
    if (*authorization == '\0')
        return -1;
    sha256(authorization, strlen(authorization), digest);
    return 0;
}

static int digest_equal(const uint8_t *a, const uint8_t *b)
{
    uint8_t diff = 0;
    size_t j;

    for (j = 0; j < SHA256_LEN; j++)
        diff |= (uint8_t)(a[j] ^ b[j]);
    return diff == 0;
}

const struct conf_client *client_find(const struct conf *c, const char *authorization)
{
    const struct conf_client *found = NULL;
    uint8_t digest[SHA256_LEN];
    size_t i;

    if (bearer_digest(authorization, digest) != 0)
        return NULL;
    for (i = 0; i < c->nclients; i++)
        if (digest_equal(digest, c->clients[i].token_sha256) && found == NULL)
            found = &c->clients[i];
    return found;
}

int client_token_matches(const char *authorization, const uint8_t token_sha256[32])
{
    uint8_t digest[SHA256_LEN];

    return bearer_digest(authorization, digest) == 0 && digest_equal(digest, token_sha256);
}

int client_allows(const struct conf_client *cl, const char *project_id)
{
    const char *want = project_id ? project_id : CLIENT_DEFAULT_PROJECT;
    size_t i;

    if (cl->all_projects)
        return 1;
    /* Both sides are canonical (request_read.h): compared exactly. A
     * request that names the literal project "default" is not the key's
     * default project. */
    if (project_id != NULL && strcmp(project_id, CLIENT_DEFAULT_PROJECT) == 0)
        return 0;
    for (i = 0; i < cl->nprojects; i++)
        if (strcmp(cl->projects[i], want) == 0)
            return 1;
    return 0;
}
