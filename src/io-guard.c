/*
 * io-guard.c — SIGBUS guards for reads of mapped files; see rankscope/guard.h.
 *
 * One process-wide SIGBUS handler; each thread keeps a stack of armed
 * frames (a thread-local pointer, so the handler, which runs on the
 * faulting thread, sees that thread's frames only).  A fault from the
 * kernel (si_code > 0) at an address inside an armed frame's range, widened
 * to whole pages because that is the granularity a fault is reported at,
 * jumps back to that frame.  Anything else is passed on to the handler that
 * was there before ours, exactly as it would have been called without us;
 * "default" means dying of SIGBUS, so we restore the default disposition
 * and re-raise.
 *
 * Other code may install its own SIGBUS handler after ours (the workbench
 * does, to restore the terminal, and puts back what it found when it
 * ends).  So every arming checks that ours is still the installed handler
 * and, if not, installs it again on top, adding whatever was there to the
 * handlers we pass on to: faults outside a guard then still reach it.
 *
 * Passing on walks that chain, newest first, one step per signal: such a
 * handler typically puts back what it replaced (which is us) and raises
 * the signal again, so the next SIGBUS we see goes one further (to the
 * handler from before it, e.g. a sanitizer's), and past the end to the
 * default action.  With a single "previous" the workbench's handler and
 * ours would hand the signal to each other for ever.  A SIGBUS we pass on
 * is taken to be fatal, so the walk never goes back.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "rankscope/guard.h"
#include "rankscope/util.h"

#define NAME_SHOWN 160

typedef struct guard_frame {
	sigjmp_buf env;
	uintptr_t lo, hi;             /* the guarded range, whole pages */
	struct guard_frame *prev;     /* the frame this one nests in */
	/* kept in the frame (memory), not in registers a longjmp may clobber */
	const char *path, *tensor;
	rs_error *err;
} guard_frame;

static _Thread_local guard_frame *volatile armed;

/* The handlers we pass foreign SIGBUS on to, newest first.  Two copies,
 * so that a reinstall never rewrites the one a handler on another thread
 * may be reading at that moment. */
#define CHAIN_MAX 8

typedef struct chain {
	struct sigaction handlers[CHAIN_MAX];
	int n;
} chain;

static chain chains[2];
static atomic_int chain_slot;
static atomic_int passed;         /* foreign SIGBUS passed on so far */
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

static void
pass_on(int sig, siginfo_t *info, void *context)
{
	const chain *c = &chains[atomic_load(&chain_slot)];
	int step = atomic_fetch_add(&passed, 1);
	const struct sigaction *p = step < c->n ? &c->handlers[step] : NULL;

	if (p != NULL && (p->sa_flags & SA_SIGINFO) && p->sa_sigaction != NULL) {
		p->sa_sigaction(sig, info, context);
		return;
	}
	if (p != NULL && !(p->sa_flags & SA_SIGINFO) && p->sa_handler != SIG_DFL &&
	    p->sa_handler != SIG_IGN) {
		p->sa_handler(sig);
		return;
	}
	/* Default (a fault cannot be ignored either): die of the signal.  It is
	 * blocked while we run, so it is delivered as we return, and a fault
	 * would recur on the same instruction anyway. */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void
on_sigbus(int sig, siginfo_t *info, void *context)
{
	uintptr_t addr = (uintptr_t)info->si_addr;
	guard_frame *f;

	if (info->si_code > 0)
		for (f = armed; f != NULL; f = f->prev)
			if (addr >= f->lo && addr < f->hi) {
				armed = f->prev;
				siglongjmp(f->env, 1);
			}
	pass_on(sig, info, context);
}

static bool
ours_installed(void)
{
	struct sigaction cur;

	return sigaction(SIGBUS, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
	       cur.sa_sigaction == on_sigbus;
}

static void
ensure_installed(void)
{
	struct sigaction cur, sa;

	if (ours_installed())
		return;
	pthread_mutex_lock(&install_lock);
	if (sigaction(SIGBUS, NULL, &cur) == 0 &&
	    !((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigbus)) {
		int slot = 1 - atomic_load(&chain_slot);
		chain *next = &chains[slot];

		/* the one found goes in front; the oldest falls off a full chain
		 * (the default action then comes sooner, never later) */
		*next = chains[1 - slot];
		if (next->n == CHAIN_MAX)
			next->n--;
		memmove(&next->handlers[1], &next->handlers[0],
		        (size_t)next->n * sizeof next->handlers[0]);
		next->handlers[0] = cur;
		next->n++;
		atomic_store(&chain_slot, slot);
		memset(&sa, 0, sizeof sa);
		sigemptyset(&sa.sa_mask);
		sa.sa_sigaction = on_sigbus;
		sa.sa_flags = SA_SIGINFO;
		sigaction(SIGBUS, &sa, NULL);
	}
	pthread_mutex_unlock(&install_lock);
}

rs_status
rs_guard_run(const void *base, size_t len, rs_guard_fn fn, void *arg,
             const char *path, const char *tensor, rs_error *err)
{
	guard_frame frame;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);

	ensure_installed();
	frame.lo = (uintptr_t)base & ~(page - 1);
	frame.hi = ((uintptr_t)base + len + page - 1) & ~(page - 1);
	frame.prev = armed;
	frame.path = path;
	frame.tensor = tensor;
	frame.err = err;
	/* savemask = 1: the jump leaves the handler, so SIGBUS, blocked while
	 * it runs, must be unblocked again */
	if (sigsetjmp(frame.env, 1) != 0) {
		char shown[NAME_SHOWN];

		if (frame.tensor == NULL)
			return rs_error_set(frame.err, RS_EIO,
			    "%s: header: the file shrank while it was being opened "
			    "(truncated or rewritten); open it again", frame.path);
		return rs_error_set(frame.err, RS_EIO,
		    "%s: tensor '%s': the file shrank while it was open (truncated or "
		    "rewritten); reopen it", frame.path,
		    rs_printable(shown, sizeof shown, frame.tensor));
	}
	armed = &frame;
	fn(arg);
	armed = frame.prev;
	return RS_OK;
}

typedef struct copy_args {
	void *dst;
	const void *src;
	size_t len;
} copy_args;

static void
copy_guarded(void *arg)
{
	copy_args *c = arg;

	memcpy(c->dst, c->src, c->len);
}

rs_status
rs_guard_copy(void *dst, const void *src, size_t len, const char *path,
              const char *tensor, rs_error *err)
{
	copy_args c = {dst, src, len};

	if (len == 0)
		return RS_OK;
	return rs_guard_run(src, len, copy_guarded, &c, path, tensor, err);
}
