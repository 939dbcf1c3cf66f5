"""cc_grpc_proto: C++ message and gRPC service code from one .proto, with the system's protoc.

No native proto rules (they would need the com_google_protobuf repository, see WORKSPACE): a
genrule runs /usr/bin/protoc with the gRPC plugin, and a cc_library compiles what it wrote.
Protos import each other relative to this folder (`import "proteus/v1/x.proto"`), and C++
includes the generated headers the same way (`#include "proteus/v1/encoder.grpc.pb.h"`).
"""

def cc_grpc_proto(name, src, proto_deps = [], deps = []):
    """Generates and compiles `src` (a path under proto/, ending in .proto).

    Args:
      name: the cc_library.
      src: the .proto file.
      proto_deps: .proto files `src` imports (inputs of protoc).
      deps: the cc_grpc_proto targets of those imports.
    """
    base = src[:-len(".proto")]
    hdrs = [base + ".pb.h", base + ".grpc.pb.h"]
    srcs = [base + ".pb.cc", base + ".grpc.pb.cc"]
    native.genrule(
        name = name + "_codegen",
        srcs = [src] + proto_deps,
        outs = hdrs + srcs,
        cmd = ("/usr/bin/protoc -Iproto --cpp_out=$(RULEDIR) --grpc_out=$(RULEDIR) " +
               "--plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin $(location {})").format(src),
    )
    native.cc_library(
        name = name,
        srcs = srcs,
        hdrs = hdrs,
        # -isystem proto and its bin/ twin: the generated code includes "proteus/v1/...".
        includes = ["."],
        deps = deps + [
            # protobuf first: libtorch_cpu.so exports a few protobuf symbols (third_party/BUILD).
            "//third_party:protobuf",
            "//third_party:grpc",
        ],
    )
