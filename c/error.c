/* error.c - names and descriptions of the MUPROC_E* codes. */
#include "internal.h"

struct error_text {
  int code;
  const char *name;
  const char *text;
};

static const struct error_text errors[] = {
    {MUPROC_OK, "MUPROC_OK", "success"},
    {MUPROC_EINVAL, "MUPROC_EINVAL", "invalid argument"},
    {MUPROC_ENOMEM, "MUPROC_ENOMEM", "out of memory or table full"},
    {MUPROC_ESRCH, "MUPROC_ESRCH", "no such process, or it has exited"},
    {MUPROC_EEXIST, "MUPROC_EEXIST", "name already taken"},
    {MUPROC_ENOENT, "MUPROC_ENOENT", "name not registered or key not present"},
    {MUPROC_ETIMEDOUT, "MUPROC_ETIMEDOUT", "deadline passed"},
    {MUPROC_EFULL, "MUPROC_EFULL", "the receiver's mailbox is full"},
    {MUPROC_ETHREADS, "MUPROC_ETHREADS", "thread cap reached"},
    {MUPROC_EPROCLIM, "MUPROC_EPROCLIM", "process table full"},
    {MUPROC_ENOTINIT, "MUPROC_ENOTINIT", "runtime not initialised"},
    {MUPROC_EBUSY, "MUPROC_EBUSY", "processes or workers still running"},
    {MUPROC_EPERM, "MUPROC_EPERM", "caller is not the mailbox's receiver"},
    {MUPROC_ETYPE, "MUPROC_ETYPE", "value has another type"},
    {MUPROC_ERANGE, "MUPROC_ERANGE", "index out of range"},
    {MUPROC_ESHUTDOWN, "MUPROC_ESHUTDOWN", "runtime shutting down"},
    {MUPROC_ESTATE, "MUPROC_ESTATE", "process state does not allow it"},
};

static const struct error_text *lookup(int code) {
  for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
    if (errors[i].code == code)
      return &errors[i];
  return NULL;
}

const char *muproc_strerror(int code) {
  const struct error_text *e = lookup(code);
  return e ? e->text : "unknown error code";
}

const char *muproc_err_name(int code) {
  const struct error_text *e = lookup(code);
  return e ? e->name : "MUPROC_EUNKNOWN";
}
