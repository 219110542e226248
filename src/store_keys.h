/* store_keys: the name of everything lcgate keeps in a store (Redis is
 * shared with other instances and other programs), in one place.
 *
 * Every name starts with STORE_KEY_PREFIX: an operator can grant lcgate's
 * ACL user exactly ~lcg:1:* and &lcg:1:events (README, "Redis"), and
 * purge-all matches it. The "1" is the layout's version: a change that
 * older instances would misread takes a new one. Everything under it
 * carries an expiry.
 *
 *   lcg:1:<route>:<tag>:<canonical>   a cached list (cache_key.h builds it)
 *   lcg:1:gen:all, lcg:1:gen:p:<label> generations (cache_store.h)
 *   lcg:1:lock:<entry key>            the lease of one fetch
 *   lcg:1:barrier                     read before a purge-all's bump
 *   lcg:1:rl:<budget>:<who>           a GCRA budget (ratelimit.h)
 *   lcg:1:events                      the invalidation channel (pub/sub) */
#ifndef LCGATE_STORE_KEYS_H
#define LCGATE_STORE_KEYS_H

#define STORE_KEY_PREFIX "lcg:1:"

#define STORE_GEN_ALL STORE_KEY_PREFIX "gen:all"
#define STORE_GEN_PROJECT STORE_KEY_PREFIX "gen:p:"  /* + a project label */
#define STORE_LOCK_PREFIX STORE_KEY_PREFIX "lock:"   /* + an entry's key */
#define STORE_BARRIER STORE_KEY_PREFIX "barrier"

/* Rate-limit budgets, + a project label, a client name or a key tag. */
#define STORE_RL_CLIENT STORE_KEY_PREFIX "rl:c:"   /* a project's requests */
#define STORE_RL_TOKEN STORE_KEY_PREFIX "rl:t:"    /* one [client]'s */
#define STORE_RL_UPSTREAM STORE_KEY_PREFIX "rl:u:" /* a project's fetches */
#define STORE_RL_KEY STORE_KEY_PREFIX "rl:k:"      /* an API key's fetches */

#define STORE_EVENTS_CHANNEL STORE_KEY_PREFIX "events"

#endif
