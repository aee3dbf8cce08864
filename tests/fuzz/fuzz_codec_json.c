/*  fuzz_codec_json: the schema-free JSON <-> msgpack conversions. An even first
    byte feeds the rest as JSON text (json -> msgpack -> json -> msgpack must give
    the same bytes); an odd one feeds it as msgpack (msgpack -> json, whose output
    must parse back unless nested too deep or holding NUL, and must equal what
    codec_msgpack_object_json writes).                                   */
#include "codec_check.h"
#include "codec_json.h"
#include "codec_msgpack.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
s_fail (const char *what, const char *detail)
{
    fprintf (stderr, "fuzz_codec_json: %s %s\n", what, detail ? detail : "");
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *body = (const char *) data + 1;
    size_t len = size - 1;
    char error[256];
    msgpack_sbuffer first, second;
    msgpack_sbuffer_init (&first);
    msgpack_sbuffer_init (&second);
    if (data[0] % 2 == 0) {
        if (codec_json_to_msgpack (body, len, &first, error, sizeof error) == 0) {
            char *json = codec_msgpack_to_json (first.data, first.size,
                                                (data[0] & 4) ? CODEC_JSON_PRETTY : 0);
            if (!json)
                s_fail ("cannot render converted JSON", NULL);
            if (codec_json_to_msgpack (json, strlen (json), &second, error, sizeof error))
                s_fail ("cannot parse our own JSON:", error);
            if (first.size != second.size || memcmp (first.data, second.data, first.size))
                s_fail ("JSON round trip changed the value:", json);
            free (json);
        }
        else if (error[0] == 0)
            s_fail ("failure without a reason", NULL);
    }
    else {
        char *json = codec_msgpack_to_json (body, len, (data[0] >> 1) & 3);
        //  The direct writer gives the same compact text
        msgpack_unpacked unpacked;
        msgpack_unpacked_init (&unpacked);
        if (((data[0] >> 1) & 3) == 0
            && codec_check_unpack (body, len, &unpacked, NULL, 0) == 0) {
            codec_text_t text = {0};
            int rc = codec_msgpack_object_json (&unpacked.data, &text);
            if ((rc == 0) != (json != NULL)
                || (json
                    && (text.size != strlen (json)
                        || memcmp (text.data, json, text.size))))
                s_fail ("the direct writer differs:", text.data);
            codec_text_clear (&text);
        }
        msgpack_unpacked_destroy (&unpacked);
        if (json) {
            //  Nesting may grow by one (ext objects), and the JSON side refuses NUL
            //  bytes that msgpack strings may hold; anything else must parse back
            if (codec_json_to_msgpack (json, strlen (json), &first, error, sizeof error)
                && strcmp (error, "nesting too deep") && !strstr (error, "NUL")
                && !strstr (error, "u0000"))
                s_fail ("cannot parse our own JSON:", error);
            free (json);
        }
    }
    msgpack_sbuffer_destroy (&first);
    msgpack_sbuffer_destroy (&second);
    return 0;
}
