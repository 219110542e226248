/* clients: who may spend the key. With [client] sections configured, every
 * request must carry Authorization: Bearer <token> whose SHA-256 one of
 * them names, and may only reach that client's projects. Pure. */
#ifndef LCGATE_CLIENTS_H
#define LCGATE_CLIENTS_H

#include <stdint.h>

#include "conf.h"

/* The project name a request without project_id uses in `projects`. */
#define CLIENT_DEFAULT_PROJECT "default"

/* The client whose token the Authorization value carries, or NULL. Every
 * configured client is compared, in constant time, whatever matches. */
const struct conf_client *client_find(const struct conf *c, const char *authorization);
/* Does the Authorization value carry the token whose SHA-256 this is?
 * (Constant time.) */
int client_token_matches(const char *authorization, const uint8_t token_sha256[32]);
/* May cl use project_id, a canonical id (request_read.h), or NULL for the
 * key's default project? */
int client_allows(const struct conf_client *cl, const char *project_id);

#endif
