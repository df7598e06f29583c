/*
 * kf_domstats: libvirt's virConnectGetAllDomainStats for the stats daemon, as a Node-API
 * addon. @unraid/libvirt has no call for block or interface statistics, and the
 * alternatives cost a tick far more CPU (bench/stats.ts): a kept-running virsh formats ~40
 * lines per VM that the daemon then parses; a spawned virsh also pays its start-up. Here a
 * tick is one RPC whose typed parameters become numbers directly.
 *
 * Every libvirt call runs on a libuv pool thread (napi async work), never on the event loop,
 * so a hung libvirtd blocks a thread, not the daemon. The connection is closed only when the
 * caller says so; the TypeScript side (src/adapters/libvirt/native-domstats.ts) makes sure no
 * call is running on it then (libvirt's connection-level calls take no reference of their own).
 *
 * API (all resolve on the event loop):
 *   open(uri: string): Promise<External>             read-only connection
 *   allDomainStats(conn, groups: number, flags: number): Promise<Answer>
 *       Answer = [generation, names, uuids, meta, values, newLayouts] (see stats_value)
 *   close(conn): void                                virConnectClose, synchronously
 *   forgetLayouts(): void                            the next answer describes every layout again
 */
#include <node_api.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#define CHECK(call)                                   \
  do {                                                \
    if ((call) != napi_ok) {                          \
      napi_throw_error(env, NULL, "kf_domstats: " #call " failed"); \
      return NULL;                                    \
    }                                                 \
  } while (0)

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *uri;
  virConnectPtr conn;
  unsigned int groups;
  unsigned int flags;
  virDomainStatsRecordPtr *records;
  int count;
  char *error;
} Job;

/* libvirt prints every error to stderr by default; the caller gets the message instead. */
static void quiet(void *data, virErrorPtr err) {
  (void)data;
  (void)err;
}

static void keep_error(Job *job, const char *what) {
  /* The last error is per thread: read it on the thread that made the call. */
  const char *msg = virGetLastErrorMessage();
  size_t n = strlen(what) + strlen(msg ? msg : "") + 3;
  job->error = malloc(n);
  if (job->error) snprintf(job->error, n, "%s: %s", what, msg ? msg : "unknown error");
}

static void free_job(napi_env env, Job *job) {
  if (job->work) napi_delete_async_work(env, job->work);
  if (job->records) virDomainStatsRecordListFree(job->records);
  free(job->uri);
  free(job->error);
  free(job);
}

static void settle_error(napi_env env, Job *job) {
  napi_value msg, err;
  napi_create_string_utf8(env, job->error ? job->error : "out of memory", NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &err);
  napi_reject_deferred(env, job->deferred, err);
}

/* ---- open ---- */

static void open_execute(napi_env env, void *data) {
  (void)env;
  Job *job = data;
  job->conn = virConnectOpenReadOnly(job->uri);
  if (!job->conn) keep_error(job, "virConnectOpenReadOnly");
}

static void open_complete(napi_env env, napi_status status, void *data) {
  Job *job = data;
  if (status != napi_ok || !job->conn) {
    settle_error(env, job);
  } else {
    napi_value ext;
    napi_create_external(env, job->conn, NULL, NULL, &ext);
    napi_resolve_deferred(env, job->deferred, ext);
  }
  free_job(env, job);
}

static napi_value start(napi_env env, Job *job, const char *name, napi_async_execute_callback exec, napi_async_complete_callback done) {
  napi_value promise, resource_name;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) {
    free_job(env, job);
    napi_throw_error(env, NULL, "kf_domstats: cannot create a promise");
    return NULL;
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  napi_create_async_work(env, NULL, resource_name, exec, done, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

static napi_value open_conn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  size_t len;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "open(uri): uri must be a string");
    return NULL;
  }
  Job *job = calloc(1, sizeof(Job));
  if (!job || !(job->uri = malloc(len + 1))) {
    free(job);
    napi_throw_error(env, NULL, "kf_domstats: out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, argv[0], job->uri, len + 1, &len);
  return start(env, job, "kf_domstats.open", open_execute, open_complete);
}

/* ---- allDomainStats ---- */

static void stats_execute(napi_env env, void *data) {
  (void)env;
  Job *job = data;
  job->count = virConnectGetAllDomainStats(job->conn, job->groups, &job->records, job->flags);
  if (job->count < 0) {
    job->records = NULL;
    keep_error(job, "virConnectGetAllDomainStats");
  }
}

/* A numeric parameter as a double; strings (device names, paths) are not needed for counters. */
static int typed_number(virTypedParameterPtr p, double *out) {
  switch (p->type) {
    case VIR_TYPED_PARAM_INT: *out = p->value.i; return 1;
    case VIR_TYPED_PARAM_UINT: *out = p->value.ui; return 1;
    /* Counters stay exact below 2^53 (8 PiB); a double is what JavaScript's arithmetic uses anyway. */
    case VIR_TYPED_PARAM_LLONG: *out = (double)p->value.l; return 1;
    case VIR_TYPED_PARAM_ULLONG: *out = (double)p->value.ul; return 1;
    case VIR_TYPED_PARAM_DOUBLE: *out = p->value.d; return 1;
    case VIR_TYPED_PARAM_BOOLEAN: *out = p->value.b ? 1 : 0; return 1;
    default: return 0;
  }
}

/*
 * Layouts: a VM's parameter names are the same text tick after tick (same devices), so each
 * distinct text gets a small number once and a tick sends numbers, not ~40 fresh strings per VM
 * (strings and their garbage were most of a tick's cost, bench/stats.ts). Touched only on the
 * main thread (complete callbacks). When the table is full it starts again under a new
 * generation, which tells the caller to forget its copy.
 */
#define MAX_LAYOUTS 1024
static char *layout_text[MAX_LAYOUTS];
static size_t layout_len[MAX_LAYOUTS];
static uint32_t layout_hash[MAX_LAYOUTS];
static int layout_count = 0;
static uint32_t layout_generation = 1;

static uint32_t fnv1a(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

/* The layout number of this text; *fresh is set when the caller has not been told it yet. */
static int layout_of(const char *text, size_t len, int *fresh) {
  uint32_t h = fnv1a(text, len);
  for (int i = 0; i < layout_count; i++)
    if (layout_hash[i] == h && layout_len[i] == len && memcmp(layout_text[i], text, len) == 0) return i;
  if (layout_count == MAX_LAYOUTS) {
    for (int i = 0; i < layout_count; i++) free(layout_text[i]);
    layout_count = 0;
    layout_generation++;
  }
  char *copy = malloc(len + 1);
  if (!copy) return -1;
  memcpy(copy, text, len);
  copy[len] = '\0';
  layout_text[layout_count] = copy;
  layout_len[layout_count] = len;
  layout_hash[layout_count] = h;
  *fresh = 1;
  return layout_count++;
}

/*
 * The answer: [generation, names[], uuids[], meta Int32Array, values Float64Array, newLayouts]
 *   meta: per VM [id, layout, offset of its first value]; values: every VM's numeric
 *   parameters in layout order; newLayouts: [[layout, "name\nname…"]] for layouts this answer
 *   is the first to use. String parameters (device names, paths) are left out.
 */
static napi_value stats_value(napi_env env, Job *job) {
  int count = job->count;
  size_t total = 0;
  for (int i = 0; i < count; i++) total += (size_t)job->records[i]->nparams;
  napi_value result, names, uuids, meta_buf, meta, values_buf, values, fresh_list, gen;
  void *meta_data = NULL, *values_data = NULL;
  if (napi_create_arraybuffer(env, sizeof(int32_t) * 3 * (size_t)(count ? count : 1), &meta_data, &meta_buf) != napi_ok ||
      napi_create_arraybuffer(env, sizeof(double) * (total ? total : 1), &values_data, &values_buf) != napi_ok)
    return NULL;
  int32_t *m = meta_data;
  double *out = values_data;
  napi_create_array_with_length(env, (size_t)count, &names);
  napi_create_array_with_length(env, (size_t)count, &uuids);
  napi_create_array(env, &fresh_list);
  uint32_t fresh_at = 0;
  size_t at = 0;
  char *joined = NULL;
  size_t joined_cap = 0;
  for (int r = 0; r < count; r++) {
    virDomainStatsRecordPtr rec = job->records[r];
    char uuid_str[VIR_UUID_STRING_BUFLEN];
    const char *dom_name = virDomainGetName(rec->dom); /* local: the record's domain carries it */
    if (virDomainGetUUIDString(rec->dom, uuid_str) < 0) uuid_str[0] = '\0';
    size_t need = 1;
    for (int i = 0; i < rec->nparams; i++) need += strnlen(rec->params[i].field, VIR_TYPED_PARAM_FIELD_LENGTH) + 1;
    if (need > joined_cap) {
      char *grown = realloc(joined, need);
      if (!grown) {
        free(joined);
        return NULL;
      }
      joined = grown;
      joined_cap = need;
    }
    size_t len = 0, first = at;
    for (int i = 0; i < rec->nparams; i++) {
      if (!typed_number(&rec->params[i], &out[at])) continue;
      size_t n = strnlen(rec->params[i].field, VIR_TYPED_PARAM_FIELD_LENGTH);
      if (at > first) joined[len++] = '\n';
      memcpy(joined + len, rec->params[i].field, n);
      len += n;
      at++;
    }
    int fresh = 0;
    int layout = layout_of(joined, len, &fresh);
    if (layout < 0) {
      free(joined);
      return NULL;
    }
    if (fresh) {
      napi_value pair, id, text;
      napi_create_array_with_length(env, 2, &pair);
      napi_create_int32(env, layout, &id);
      napi_create_string_latin1(env, joined, len, &text);
      napi_set_element(env, pair, 0, id);
      napi_set_element(env, pair, 1, text);
      napi_set_element(env, fresh_list, fresh_at++, pair);
    }
    napi_value name, uuid;
    napi_create_string_utf8(env, dom_name ? dom_name : "", NAPI_AUTO_LENGTH, &name);
    napi_create_string_latin1(env, uuid_str, NAPI_AUTO_LENGTH, &uuid);
    napi_set_element(env, names, (uint32_t)r, name);
    napi_set_element(env, uuids, (uint32_t)r, uuid);
    m[3 * r] = (int32_t)virDomainGetID(rec->dom);
    m[3 * r + 1] = layout;
    m[3 * r + 2] = (int32_t)first;
  }
  free(joined);
  napi_create_typedarray(env, napi_int32_array, 3 * (size_t)count, meta_buf, 0, &meta);
  napi_create_typedarray(env, napi_float64_array, at, values_buf, 0, &values);
  napi_create_uint32(env, layout_generation, &gen);
  napi_create_array_with_length(env, 6, &result);
  napi_set_element(env, result, 0, gen);
  napi_set_element(env, result, 1, names);
  napi_set_element(env, result, 2, uuids);
  napi_set_element(env, result, 3, meta);
  napi_set_element(env, result, 4, values);
  napi_set_element(env, result, 5, fresh_list);
  return result;
}

static void stats_complete(napi_env env, napi_status status, void *data) {
  Job *job = data;
  napi_value result = NULL;
  if (status == napi_ok && job->count >= 0) {
    result = stats_value(env, job);
    if (!result && !job->error) job->error = strdup("kf_domstats: out of memory building the answer");
  }
  if (result) napi_resolve_deferred(env, job->deferred, result);
  else settle_error(env, job);
  free_job(env, job);
}

static virConnectPtr conn_arg(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "expected a connection from open()");
    return NULL;
  }
  return p;
}

static napi_value all_domain_stats(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  uint32_t groups, flags;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "allDomainStats(conn, groups, flags)");
    return NULL;
  }
  virConnectPtr conn = conn_arg(env, argv[0]);
  if (!conn) return NULL;
  if (napi_get_value_uint32(env, argv[1], &groups) != napi_ok || napi_get_value_uint32(env, argv[2], &flags) != napi_ok) {
    napi_throw_type_error(env, NULL, "groups and flags must be numbers");
    return NULL;
  }
  Job *job = calloc(1, sizeof(Job));
  if (!job) {
    napi_throw_error(env, NULL, "kf_domstats: out of memory");
    return NULL;
  }
  job->conn = conn;
  job->groups = groups;
  job->flags = flags;
  return start(env, job, "kf_domstats.allDomainStats", stats_execute, stats_complete);
}

/* forgetLayouts(): starts the layout table again (the caller lost its copy); the next answer describes every layout. */
static napi_value forget_layouts(napi_env env, napi_callback_info info) {
  (void)info;
  for (int i = 0; i < layout_count; i++) free(layout_text[i]);
  layout_count = 0;
  layout_generation++;
  (void)env;
  return NULL;
}

/* ---- close ---- */

static napi_value close_conn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return NULL;
  virConnectPtr conn = conn_arg(env, argv[0]);
  if (conn) virConnectClose(conn);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  virInitialize();
  virSetErrorFunc(NULL, quiet);
  napi_property_descriptor props[] = {
    {"open", NULL, open_conn, NULL, NULL, NULL, napi_default, NULL},
    {"allDomainStats", NULL, all_domain_stats, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, close_conn, NULL, NULL, NULL, napi_default, NULL},
    {"forgetLayouts", NULL, forget_layouts, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

NAPI_MODULE(kf_domstats, init)
