/* io-onnx.c — placeholder while the reader is written. */
#include "config.h"

#include "rankscope/model.h"

rs_model *
rs_onnx_parse(const char *path, const unsigned char *bytes, size_t len, rs_error *err)
{
	(void)bytes;
	(void)len;
	rs_error_set(err, RS_EFORMAT, "%s: this format's reader is not built yet", path);
	return NULL;
}

rs_model *
rs_onnx_open(const char *path, rs_error *err)
{
	return rs_onnx_parse(path, NULL, 0, err);
}
