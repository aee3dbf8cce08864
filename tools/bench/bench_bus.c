/*  bench-bus: round trips through the bus broker against raw ZeroMQ, in one go.
    Reference: a DEALER client process and a ROUTER echo process (answers each
    message at once). Bus: a bus_client process, a chorus-broker process and a
    chorus-bus-echo replica (the same binaries as production, from bench-bus's own
    directory). Each case runs sequential round trips of a 300-byte message and a
    pipelined variant with 64 outstanding; cases alternate over a few rounds and
    the median round counts. Prints "figure <name> <value> <unit>" lines, used by
    tools/bench/run.

        bench-bus [--n N] [--pipelined-n N] [--window W] [--rounds R] [--size B]
        BENCH_BROKER_PREFIX="valgrind --tool=callgrind" bench-bus ...  (profile)
    BENCH_ECHO_PREFIX and BENCH_PROXY_PREFIX do the same for the echo replica and
    the forwarder; BENCH_LOG names a file for the processes' output.             */
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "bus_client.h"
#include "bus_proto.h"
#include "codec_msgpack.h"

extern char **environ;

typedef struct {
    int n;            //  sequential round trips per round
    int pipelined_n;  //  messages per pipelined run
    int window;       //  requests outstanding in the pipelined run
    int rounds;       //  rounds (raw and bus alternate)
    int size;         //  payload bytes
} s_params_t;

typedef struct {
    double mean_us;  //  mean round trip, sequential
    double p50_us;   //  median round trip
    double p99_us;   //  99th percentile round trip
    double rate;     //  messages per second, pipelined
} s_result_t;

//  --------------------------------------------------------------------------
//  Processes and ports

//  Start a program with extra environment ("NAME=value", NULL-terminated) and
//  an optional command prefix (for profilers). Returns the pid or -1.
static pid_t
s_spawn (const char *path, char *const argv_tail[], const char *env[], const char *prefix)
{
    for (int i = 0; env && env[i]; i++)
        putenv ((char *) env[i]);
    char script[1024];
    snprintf (script, sizeof script, "exec %s \"$0\" \"$@\" >>%s 2>&1",
              prefix ? prefix : "",
              getenv ("BENCH_LOG") ? getenv ("BENCH_LOG") : "/dev/null");
    char *argv[16] = {"/bin/sh", "-c", script, (char *) path};
    int argc = 4;
    for (int i = 0; argv_tail && argv_tail[i] && argc < 15; i++)
        argv[argc++] = argv_tail[i];
    argv[argc] = NULL;
    pid_t pid;
    if (posix_spawn (&pid, "/bin/sh", NULL, NULL, argv, environ))
        return -1;
    return pid;
}

static void
s_stop (pid_t pid)
{
    if (pid <= 0)
        return;
    kill (pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid (pid, NULL, WNOHANG) == pid)
            return;
        zclock_sleep (50);
    }
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
}

//  CPU time (user + system) a process has used so far, in microseconds; 0 if unknown.
static double
s_cpu_us (pid_t pid)
{
    char path[64], text[1024];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return 0;
    size_t got = fread (text, 1, sizeof text - 1, file);
    fclose (file);
    text[got] = 0;
    //  Fields 14 and 15 (utime, stime) follow the ")" that ends the command name
    char *at = strrchr (text, ')');
    unsigned long utime = 0, stime = 0;
    if (!at
        || sscanf (at + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                   &stime)
               != 2)
        return 0;
    return (double) (utime + stime) * 1e6 / (double) sysconf (_SC_CLK_TCK);
}

static bool
s_port_free (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons (port)};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    bool free_ = bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0;
    close (fd);
    return free_;
}

//  A loopback port P with P+1 and P+2 also free (a broker binds three).
static int
s_free_ports (void)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        int fd = socket (AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = {.sin_family = AF_INET};
        addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        bind (fd, (struct sockaddr *) &addr, sizeof addr);
        getsockname (fd, (struct sockaddr *) &addr, &len);
        close (fd);
        int port = ntohs (addr.sin_port);
        if (port < 65000 && s_port_free (port) && s_port_free (port + 1)
            && s_port_free (port + 2))
            return port;
    }
    return -1;
}

//  --------------------------------------------------------------------------
//  Raw reference: ROUTER echo server (its own process) and DEALER client

static int
s_serve_raw (int port)
{
    zsys_init ();
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_set_sndhwm (router, 100000);
    zsock_set_rcvhwm (router, 100000);
    if (zsock_bind (router, "tcp://127.0.0.1:%d", port) < 0)
        return 1;
    while (!zsys_interrupted) {
        zmsg_t *msg = zmsg_recv (router);
        if (!msg)
            break;
        zmsg_send (&msg, router);
    }
    zsock_destroy (&router);
    return 0;
}

//  A plain forwarder with the broker's process layout and no bus logic: ROUTER
//  frontend for clients, DEALER backend connected to a raw echo server.
static int
s_serve_proxy (int port, int server_port)
{
    zsys_init ();
    zsock_t *frontend = zsock_new (ZMQ_ROUTER);
    zsock_t *backend = zsock_new (ZMQ_DEALER);
    if (zsock_bind (frontend, "tcp://127.0.0.1:%d", port) < 0
        || zsock_connect (backend, "tcp://127.0.0.1:%d", server_port) < 0)
        return 1;
    zmq_proxy (zsock_resolve (frontend), zsock_resolve (backend), NULL);
    zsock_destroy (&frontend);
    zsock_destroy (&backend);
    return 0;
}

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static void
s_stats (double *samples, int n, s_result_t *result)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += samples[i];
    qsort (samples, n, sizeof (double), s_compare);
    result->mean_us = sum / n;
    result->p50_us = samples[n / 2];
    result->p99_us = samples[(int) (n * 0.99)];
}

//  Send one message and wait for its echo; -1 after 5 s without an answer.
static int
s_raw_trip (zsock_t *dealer, zpoller_t *poller, const void *data, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, data, size);
    zmsg_send (&msg, dealer);
    if (zpoller_wait (poller, 5000) != dealer)
        return -1;
    msg = zmsg_recv (dealer);
    zmsg_destroy (&msg);
    return 0;
}

static int
s_run_raw (int port, const s_params_t *params, s_result_t *result)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zsock_set_sndhwm (dealer, 100000);
    zsock_set_rcvhwm (dealer, 100000);
    zsock_set_linger (dealer, 0);
    zsock_connect (dealer, "tcp://127.0.0.1:%d", port);
    zpoller_t *poller = zpoller_new (dealer, NULL);
    char *data = calloc (1, params->size);
    int rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++)  //  warm up (and wait for the server)
        rc = s_raw_trip (dealer, poller, data, params->size);
    double *samples = calloc (params->n, sizeof (double));
    for (int i = 0; i < params->n && rc == 0; i++) {
        int64_t start = zclock_usecs ();
        rc = s_raw_trip (dealer, poller, data, params->size);
        samples[i] = (double) (zclock_usecs () - start);
    }
    if (rc == 0)
        s_stats (samples, params->n, result);
    //  Pipelined: keep window messages outstanding
    int64_t start = zclock_usecs ();
    int sent = 0, received = 0;
    while (rc == 0 && received < params->pipelined_n) {
        while (sent < params->pipelined_n && sent - received < params->window) {
            zmsg_t *msg = zmsg_new ();
            zmsg_addmem (msg, data, params->size);
            zmsg_send (&msg, dealer);
            sent++;
        }
        if (zpoller_wait (poller, 5000) != dealer)
            rc = -1;
        zmsg_t *msg;
        while (rc == 0 && (msg = bus_proto_recv (dealer, NULL))) {
            zmsg_destroy (&msg);
            received++;
        }
    }
    result->rate = received * 1e6 / (double) (zclock_usecs () - start);
    free (samples);
    free (data);
    zpoller_destroy (&poller);
    zsock_destroy (&dealer);
    return rc;
}

//  --------------------------------------------------------------------------
//  Bus: bus_client -> chorus-broker -> chorus-bus-echo

typedef struct {
    int finals;  //  final replies
    int errors;  //  errors
    char code[64];
} s_tally_t;

static void
s_on_reply (bus_client_t *client, const bus_reply_t *reply, void *arg)
{
    s_tally_t *tally = (s_tally_t *) arg;
    if (reply->kind == BUS_REPLY_FINAL)
        tally->finals++;
    else if (reply->kind == BUS_REPLY_ERROR) {
        tally->errors++;
        snprintf (tally->code, sizeof tally->code, "%s", reply->code);
    }
}

//  Run the client until tally has want endings or timeout_ms passes.
static int
s_bus_wait (bus_client_t *client, zpoller_t *poller, s_tally_t *tally, int want,
            int timeout_ms)
{
    int64_t end = zclock_mono () + timeout_ms;
    while (tally->finals + tally->errors < want) {
        int64_t left = end - zclock_mono ();
        if (left <= 0)
            return -1;
        int wait = bus_client_tick (client);
        zpoller_wait (poller, (int) (left < wait ? left : wait));
        bus_client_process (client);
    }
    return tally->errors ? -1 : 0;
}

static int
s_run_bus (const char *brokers, const s_params_t *params, s_result_t *result)
{
    bus_client_t *client = bus_client_new (brokers, 500, 4, NULL);
    zpoller_t *poller = zpoller_new (NULL);
    zsock_t *sockets[8];
    size_t count = bus_client_sockets (client, sockets, 8);
    for (size_t i = 0; i < count; i++)
        zpoller_add (poller, sockets[i]);
    ChorusBus__Headers headers = CHORUS_BUS__HEADERS__INIT;
    headers.request_id = "bench";
    headers.timeout_ms = 10000;
    ChorusBus__Echo echo = CHORUS_BUS__ECHO__INIT;
    echo.data.len = params->size;
    echo.data.data = calloc (1, params->size);
    size_t size;
    void *body = codec_encode_alloc (&echo.base, &size);
    free (echo.data.data);

    //  Until the replica answers (the broker and the echo process are starting)
    int rc = -1;
    for (int attempt = 0; attempt < 100 && rc; attempt++) {
        s_tally_t probe = {0};
        if (bus_client_brokers_alive (client)
            && bus_client_request (client, "echo", "echo", &headers, body, size,
                                   s_on_reply, &probe))
            rc = s_bus_wait (client, poller, &probe, 1, 1000);
        else {
            zpoller_wait (poller, 50);
            bus_client_process (client);
        }
        if (rc)
            zclock_sleep (50);
    }
    s_tally_t tally = {0};
    for (int i = 0; i < 1000 && rc == 0; i++) {  //  warm up
        bus_client_request (client, "echo", "echo", &headers, body, size, s_on_reply,
                            &tally);
        rc = s_bus_wait (client, poller, &tally, i + 1, 5000);
    }
    double *samples = calloc (params->n, sizeof (double));
    memset (&tally, 0, sizeof tally);
    for (int i = 0; i < params->n && rc == 0; i++) {
        int64_t start = zclock_usecs ();
        bus_client_request (client, "echo", "echo", &headers, body, size, s_on_reply,
                            &tally);
        rc = s_bus_wait (client, poller, &tally, i + 1, 5000);
        samples[i] = (double) (zclock_usecs () - start);
    }
    if (rc == 0)
        s_stats (samples, params->n, result);
    else
        fprintf (stderr, "bench-bus: bus run failed: %s\n", tally.code);
    //  Pipelined
    memset (&tally, 0, sizeof tally);
    int64_t start = zclock_usecs ();
    int sent = 0;
    while (rc == 0 && tally.finals < params->pipelined_n) {
        while (sent < params->pipelined_n && sent - tally.finals < params->window) {
            bus_client_request (client, "echo", "echo", &headers, body, size, s_on_reply,
                                &tally);
            sent++;
        }
        rc = s_bus_wait (client, poller, &tally, tally.finals + 1, 5000);
    }
    if (rc)
        fprintf (stderr, "bench-bus: pipelined bus run failed: %s\n", tally.code);
    result->rate = tally.finals * 1e6 / (double) (zclock_usecs () - start);
    free (samples);
    free (body);
    zpoller_destroy (&poller);
    bus_client_destroy (&client);
    return rc;
}

//  --------------------------------------------------------------------------

static double
s_median (double *values, int n)
{
    qsort (values, n, sizeof (double), s_compare);
    return values[n / 2];
}

int
main (int argc, char **argv)
{
    if (argc == 3 && streq (argv[1], "--serve-raw"))
        return s_serve_raw ((int) strtol (argv[2], NULL, 10));
    if (argc == 4 && streq (argv[1], "--serve-proxy"))
        return s_serve_proxy ((int) strtol (argv[2], NULL, 10),
                              (int) strtol (argv[3], NULL, 10));
    s_params_t params = {
        .n = 20000, .pipelined_n = 100000, .window = 64, .rounds = 3, .size = 300};
    for (int i = 1; i + 1 < argc; i += 2) {
        int value = (int) strtol (argv[i + 1], NULL, 10);
        if (value <= 0) {
            fprintf (stderr, "bench-bus: %s wants a positive number\n", argv[i]);
            return 2;
        }
        if (streq (argv[i], "--n"))
            params.n = value;
        else if (streq (argv[i], "--pipelined-n"))
            params.pipelined_n = value;
        else if (streq (argv[i], "--window"))
            params.window = value;
        else if (streq (argv[i], "--rounds"))
            params.rounds = value;
        else if (streq (argv[i], "--size"))
            params.size = value;
        else {
            fprintf (stderr, "usage: bench-bus [--n N] [--pipelined-n N] [--window W] "
                             "[--rounds R] [--size BYTES]\n");
            return 2;
        }
    }
    //  The broker and echo binaries live beside us (<build>/bin)
    char self[4096];
    ssize_t len = readlink ("/proc/self/exe", self, sizeof self - 1);
    assert (len > 0);
    self[len] = 0;
    char dir[4096], broker_bin[4200], echo_bin[4200];
    snprintf (dir, sizeof dir, "%s", self);
    *strrchr (dir, '/') = 0;
    const char *bin_dir = getenv ("CHORUS_BIN_DIR") ? getenv ("CHORUS_BIN_DIR") : dir;
    snprintf (broker_bin, sizeof broker_bin, "%s/chorus-broker", bin_dir);
    snprintf (echo_bin, sizeof echo_bin, "%s/chorus-bus-echo", bin_dir);

    zsys_init ();
    zsys_handler_set (NULL);  //  a Ctrl-C stops us at once
    int raw_port = s_free_ports ();
    char port_text[16];
    snprintf (port_text, sizeof port_text, "%d", raw_port);
    pid_t raw = s_spawn (self, (char *[]){"--serve-raw", port_text, NULL}, NULL, NULL);

    int proxy_port = s_free_ports ();
    char proxy_text[16];
    snprintf (proxy_text, sizeof proxy_text, "%d", proxy_port);
    pid_t proxy = s_spawn (self, (char *[]){"--serve-proxy", proxy_text, port_text, NULL},
                           NULL, getenv ("BENCH_PROXY_PREFIX"));
    int bus_port = s_free_ports ();
    if (bus_port == raw_port)
        bus_port = raw_port + 3;
    static char bind_env[128], brokers_env[128];
    char brokers[64];
    snprintf (brokers, sizeof brokers, "tcp://127.0.0.1:%d", bus_port);
    snprintf (bind_env, sizeof bind_env, "CHORUS_BROKER_BIND=%s", brokers);
    snprintf (brokers_env, sizeof brokers_env, "CHORUS_BROKERS=%s", brokers);
    const char *broker_env[] = {bind_env, "CHORUS_LOG_LEVEL=warn", NULL};
    pid_t broker = s_spawn (broker_bin, NULL, broker_env, getenv ("BENCH_BROKER_PREFIX"));
    const char *echo_env[] = {brokers_env, "CHORUS_ECHO_CREDIT=256",
                              "CHORUS_ECHO_REPLICA=bench", NULL};
    pid_t echo = s_spawn (echo_bin, NULL, echo_env, getenv ("BENCH_ECHO_PREFIX"));

    double raw_rtt[16], bus_rtt[16], raw_rate[16], bus_rate[16], fwd_rtt[16],
        fwd_rate[16];
    double raw_p50[16], bus_p50[16], raw_p99[16], bus_p99[16];
    //  CPU per message of the middle processes: robust where latency is not (idle
    //  vCPUs wake slowly, so round trips depend on what else the machine does)
    double cpu_raw[16], cpu_fwd[16], cpu_broker[16], cpu_echo[16];
    double messages = 1000.0 + params.n + params.pipelined_n;
    int rounds = params.rounds < 16 ? params.rounds : 16, rc = 0;
    for (int round = 0; round < rounds && rc == 0; round++) {
        s_result_t r = {0}, b = {0}, f = {0};
        double t0 = s_cpu_us (raw);
        rc = s_run_raw (raw_port, &params, &r);
        double t1 = s_cpu_us (raw), t2 = s_cpu_us (proxy);
        if (rc == 0)
            rc = s_run_raw (proxy_port, &params, &f);
        double t3 = s_cpu_us (proxy), t4 = s_cpu_us (broker), t5 = s_cpu_us (echo);
        if (rc == 0)
            rc = s_run_bus (brokers, &params, &b);
        cpu_raw[round] = (t1 - t0) / messages, cpu_fwd[round] = (t3 - t2) / messages;
        cpu_broker[round] = (s_cpu_us (broker) - t4) / messages;
        cpu_echo[round] = (s_cpu_us (echo) - t5) / messages;
        raw_rtt[round] = r.mean_us, bus_rtt[round] = b.mean_us;
        raw_p50[round] = r.p50_us, bus_p50[round] = b.p50_us;
        raw_p99[round] = r.p99_us, bus_p99[round] = b.p99_us;
        raw_rate[round] = r.rate, bus_rate[round] = b.rate;
        fwd_rtt[round] = f.mean_us, fwd_rate[round] = f.rate;
        fprintf (stderr,
                 "round %d: raw %.1f us %.0f msg/s, forwarder %.1f us %.0f msg/s, "
                 "broker %.1f us %.0f msg/s\n",
                 round + 1, r.mean_us, r.rate, f.mean_us, f.rate, b.mean_us, b.rate);
    }
    s_stop (echo);
    s_stop (broker);
    s_stop (proxy);
    s_stop (raw);
    if (rc) {
        fprintf (stderr, "bench-bus: failed (see BENCH_LOG for process output)\n");
        return 1;
    }
    double rtt_raw = s_median (raw_rtt, rounds), rtt_bus = s_median (bus_rtt, rounds);
    double rate_raw = s_median (raw_rate, rounds), rate_bus = s_median (bus_rate, rounds);
    printf ("figure bus_rtt_raw_us %.1f us\n", rtt_raw);
    printf ("figure bus_rtt_broker_us %.1f us\n", rtt_bus);
    printf ("figure bus_rtt_ratio %.2f x\n", rtt_bus / rtt_raw);
    printf ("figure bus_rtt_raw_p50_us %.1f us\n", s_median (raw_p50, rounds));
    printf ("figure bus_rtt_broker_p50_us %.1f us\n", s_median (bus_p50, rounds));
    printf ("figure bus_rtt_raw_p99_us %.1f us\n", s_median (raw_p99, rounds));
    printf ("figure bus_rtt_broker_p99_us %.1f us\n", s_median (bus_p99, rounds));
    printf ("figure bus_pipelined_raw_msgs %.0f msg/s\n", rate_raw);
    printf ("figure bus_pipelined_broker_msgs %.0f msg/s\n", rate_bus);
    printf ("figure bus_pipelined_ratio %.2f x\n", rate_raw / rate_bus);
    //  The floor for any broker: one plain forwarding hop, same process layout
    double rtt_fwd = s_median (fwd_rtt, rounds), rate_fwd = s_median (fwd_rate, rounds);
    printf ("figure bus_rtt_forwarder_us %.1f us\n", rtt_fwd);
    printf ("figure bus_pipelined_forwarder_msgs %.0f msg/s\n", rate_fwd);
    printf ("figure bus_rtt_broker_vs_forwarder %.2f x\n", rtt_bus / rtt_fwd);
    printf ("figure bus_pipelined_broker_vs_forwarder %.2f x\n", rate_fwd / rate_bus);
    printf ("figure bus_cpu_raw_server_us %.2f us/msg\n", s_median (cpu_raw, rounds));
    printf ("figure bus_cpu_forwarder_us %.2f us/msg\n", s_median (cpu_fwd, rounds));
    printf ("figure bus_cpu_broker_us %.2f us/msg\n", s_median (cpu_broker, rounds));
    printf ("figure bus_cpu_echo_us %.2f us/msg\n", s_median (cpu_echo, rounds));
    return 0;
}
