-- metadata.lua — model:metadata and the model's fields on the sample MLP
-- (samples/digits-mlp.safetensors, whose __metadata__ README lists).
local model, _, params = ...
local check = require "check"

check.eq(model:metadata("model"), "digits-mlp", "metadata model")
check.eq(model:metadata("test_accuracy"), "0.9667", "metadata test_accuracy")
check.eq(model:metadata("epochs"), "40", "metadata values are strings")
check.eq(model:metadata("nosuch"), nil, "unknown metadata key is nil")
check.raises(function() model:metadata() end, { "bad argument #1 to 'metadata'",
	"string expected" }, "metadata()")
check.eq(model.path, params.path, "model.path")
check.eq(#model, 3, "three layers")
local names = {}
for _, l in ipairs(model:layers()) do names[#names + 1] = l.name .. "=" .. l.rows .. "x" .. l.cols end
check.eq(table.concat(names, " "), "fc1.weight=512x64 fc2.weight=512x512 fc3.weight=10x512",
	"layers of the MLP")
check.eq(model:params(), 512 * 64 + 512 * 512 + 10 * 512, "model:params()")
check.done()
