/*
 * role.h — what each tensor of a model is, as its runtime sees it.
 *
 * A file with a graph (ONNX) says how each weight is used; rs_model_open
 * keeps what its reader found.  For the rest, rs_roles_infer decides from
 * the shape, the name and the network order (HACKING.md, "Layers as their
 * runtime sees them"), and the user's rules (--layout, --kind) settle what
 * no file tells, such as a Paddle or tfjs linear stored in x out.
 */
#ifndef RANKSCOPE_ROLE_H
#define RANKSCOPE_ROLE_H

#include <stdbool.h>
#include <stddef.h>

#include "rankscope/error.h"
#include "rankscope/model.h"

/* Fills every RS_ROLE_UNKNOWN tensor's role (and a depthwise kernel's
 * groups) from shape, name and order; never changes what a reader set. */
void rs_roles_infer(rs_model *model);

/* Replaces every stack of experts (3-D, named "expert"/"exps") by one 2-D
 * view per expert, NAME.0 .. NAME.E-1 (rs_model_open does this before
 * ordering, so the experts stand where their stack stood). */
void rs_roles_split_experts(rs_model *model);

/* What a --kind rule can say a tensor is. */
typedef enum rs_kind_choice {
	RS_KIND_LINEAR, RS_KIND_EMBEDDING, RS_KIND_CONV, RS_KIND_DEPTHWISE,
	RS_KIND_GROUPED, RS_KIND_OTHER
} rs_kind_choice;

/* One user rule: PATTERN=in,out | out,in (--layout), or
 * PATTERN=linear | embedding | conv | depthwise | groups:N | other (--kind).
 * The pattern is an fnmatch(3) glob over tensor names, as --layer's. */
typedef struct rs_role_rule {
	char *pattern;
	bool is_layout;
	rs_tensor_layout layout;     /* is_layout */
	rs_kind_choice kind;         /* otherwise */
	size_t groups;               /* RS_KIND_GROUPED */
	bool optional;               /* matching no tensor is not an error (a
	                                plan's rules: its reader names what is
	                                missing better) */
} rs_role_rule;

/* Parses "PATTERN=VALUE" of --layout (is_layout) or --kind; the message
 * names the option and what it accepts. */
rs_status rs_role_rule_parse(const char *text, bool is_layout, rs_role_rule *out,
                             rs_error *err);
void rs_role_rule_free(rs_role_rule *rule);

/*
 * Applies rules in order (a later rule wins) to the model's tensors.  A rule
 * that matches no tensor, or that cannot hold for a tensor it matches (in,out
 * on a 4-D kernel, groups not dividing the output channels), is an error
 * naming the rule and the tensor.
 */
rs_status rs_roles_apply(rs_model *model, const rs_role_rule *rules, size_t nrules,
                         rs_error *err);

/*
 * A fused weight split into its parts: PATTERN=q,k,v (equal parts of the
 * rows) or PATTERN=q:4096,k:1024,v:1024 (rows per part, summing to the
 * tensor's).  Each matching 2-D tensor, stored out,in, becomes one view per
 * part, NAME.PART, its rows (outputs) a slice of the original's.
 */
#define RS_SPLIT_MAX_PARTS 16

typedef struct rs_split_rule {
	char *pattern;
	size_t nparts;
	char *names[RS_SPLIT_MAX_PARTS];
	size_t rows[RS_SPLIT_MAX_PARTS];   /* 0 for all: equal parts */
	bool optional;                     /* a plan's: matching nothing is fine */
} rs_split_rule;

rs_status rs_split_rule_parse(const char *text, rs_split_rule *out, rs_error *err);
void rs_split_rule_free(rs_split_rule *rule);
/* Splits the tensors each rule matches; an error names the rule and tensor. */
rs_status rs_roles_split(rs_model *model, const rs_split_rule *rules, size_t nrules,
                         rs_error *err);

#endif
