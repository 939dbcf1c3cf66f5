"""grpc_cc_test: a GoogleTest binary whose sources compile without LibTorch's include path.

The test's sources go into an alwayslink cc_library that sees only torch-free targets (the
PyTorch wheel's include/ carries protobuf 3.13 headers that would shadow Debian's 3.21, see
server/BUILD); the cc_test itself has no sources and adds //model:torch_model at link time.
"""

def grpc_cc_test(name, src, deps = [], data = [], **kwargs):
    native.cc_library(
        name = name + "_lib",
        testonly = True,
        srcs = [src],
        deps = deps + ["//third_party:gtest"],
        alwayslink = True,  # keep the TEST() registrations
    )
    native.cc_test(
        name = name,
        data = data,
        deps = [
            # protobuf first: libtorch_cpu.so exports a few protobuf symbols (third_party/BUILD).
            "//third_party:protobuf",
            ":" + name + "_lib",
            "//model:torch_model",
            "//third_party:gtest_main",
        ],
        **kwargs
    )
