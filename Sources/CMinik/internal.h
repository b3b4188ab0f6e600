/* Shared inside CMinik only. */
#ifndef MINIK_INTERNAL_H
#define MINIK_INTERNAL_H

typedef int (*thread_job_fn)(void *);

/* Runs fn(arg) on a new pthread and joins it; returns fn's result or -errno. The thread
 * may change namespaces freely: it dies right after, and nothing else runs on it. */
int minik_run_on_thread(thread_job_fn fn, void *arg);

#endif
