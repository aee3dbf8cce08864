# chorus_fuzz_target (name source libs...): a fuzz target is one source defining
# LLVMFuzzerTestOneInput. It always builds <name> with fuzz_driver.c (any
# compiler) and registers it as a CTest labelled "fuzz" that runs the seed corpus
# tests/fuzz/corpus/<name>/ plus pseudo-random and mutated inputs from a fixed seed.
# With -DCHORUS_FUZZ=ON and clang it also builds <name>_libfuzzer
# (-fsanitize=fuzzer,address,undefined) and compiles the chorus libraries it links
# with coverage and sanitizer instrumentation, so libFuzzer sees inside them.
# Include this file from any CMakeLists.txt that declares fuzz targets.
include_guard (GLOBAL)

set (CHORUS_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})

# Compile a project library (and the project libraries it links) with libFuzzer
# coverage and the sanitizers; whatever links it then links their runtimes.
function (chorus_fuzz_instrument lib)
    if (NOT TARGET ${lib})
        return ()
    endif ()
    get_target_property (imported ${lib} IMPORTED)
    get_target_property (type ${lib} TYPE)
    if (imported OR NOT type MATCHES "STATIC_LIBRARY|SHARED_LIBRARY|OBJECT_LIBRARY")
        return ()
    endif ()
    get_property (done GLOBAL PROPERTY CHORUS_FUZZ_INSTRUMENTED)
    if (lib IN_LIST done)
        return ()
    endif ()
    set_property (GLOBAL APPEND PROPERTY CHORUS_FUZZ_INSTRUMENTED ${lib})
    target_compile_options (${lib} PRIVATE -fsanitize=fuzzer-no-link,address,undefined
                            -fno-omit-frame-pointer)
    target_link_options (${lib} INTERFACE -fsanitize=fuzzer-no-link,address,undefined)
    get_target_property (deps ${lib} LINK_LIBRARIES)
    if (deps)
        foreach (dep ${deps})
            chorus_fuzz_instrument (${dep})
        endforeach ()
    endif ()
endfunction ()

function (chorus_fuzz_target name source)
    get_filename_component (source ${source} ABSOLUTE)
    set (corpus ${CHORUS_FUZZ_DIR}/corpus/${name})
    add_executable (${name} ${source} ${CHORUS_FUZZ_DIR}/fuzz_driver.c)
    target_link_libraries (${name} PRIVATE ${ARGN})
    if (EXISTS ${corpus})
        add_test (NAME ${name} COMMAND ${name} ${corpus})
    else ()
        message (WARNING "fuzz target ${name} has no seed corpus in ${corpus}")
        add_test (NAME ${name} COMMAND ${name})
    endif ()
    set_tests_properties (${name} PROPERTIES LABELS "fuzz" TIMEOUT 300)

    if (CHORUS_FUZZ)
        if (NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
            message (WARNING "CHORUS_FUZZ needs clang (CC=clang); ${name}_libfuzzer skipped")
            return ()
        endif ()
        foreach (lib ${ARGN})
            chorus_fuzz_instrument (${lib})
        endforeach ()
        add_executable (${name}_libfuzzer ${source})
        target_compile_options (${name}_libfuzzer PRIVATE -fsanitize=fuzzer,address,undefined
                                -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
        target_link_options (${name}_libfuzzer PRIVATE -fsanitize=fuzzer,address,undefined)
        target_link_libraries (${name}_libfuzzer PRIVATE ${ARGN})
    endif ()
endfunction ()
