# The project's folders and the folders each may depend on: the layering of
# docs/architecture.md, enforced twice.
#  * At configure time (cbtd_check_layers): a folder's library that links
#    another folder's library not listed here stops the configure.
#  * In the unit tests (tests/layering_test.py): a file that includes a
#    header of a folder not listed here fails the test `layering`.
# The list is closed under transitivity: a folder lists every folder it
# reaches, directly or not.
set(CBTD_LAYERS
  "common:"
  "cbt:common"
  "snapshot:common"
  "transport:cbt,common"
  "restore:transport,cbt,common"
  "receiver:restore,transport,cbt,common"
  "receiver/cli:receiver,restore,transport,cbt,common"
  "control:transport,cbt,common"
  "agent:control,nbd,restore,transport,snapshot,cbt,common"
  "nbd:restore,transport,cbt,common"
  "nbd/plugin:nbd,agent,control,restore,transport,snapshot,cbt,common"
  "cbtctl:control,nbd,restore,transport,snapshot,cbt,common"
  "bench:common")

# The library target of each folder (bench has none of its own).
set(CBTD_LAYER_TARGETS
  "common:cbtd_common"
  "cbt:cbtd_cbt"
  "snapshot:cbtd_snapshot"
  "transport:cbtd_transport,cbtd_proto"
  "restore:cbtd_restore"
  "receiver:cbtd_receiver,cbtd_receiver_rados"
  "receiver/cli:cbtd_receiver_cli"
  "control:cbtd_control,cbtd_control_proto"
  "agent:cbtd_agent"
  "nbd:cbtd_nbd"
  "nbd/plugin:cbtd_nbdkit_plugin"
  "cbtctl:cbtd_cbtctl")

# Folder of a cbtd library target, in `out` ("" for shared settings such as
# cbtd_options).
function(_cbtd_layer_of target out)
  set(found "")
  foreach(row IN LISTS CBTD_LAYER_TARGETS)
    string(REPLACE ":" ";" kv "${row}")
    list(GET kv 0 folder)
    list(GET kv 1 targets)
    string(REPLACE "," ";" targets "${targets}")
    if(target IN_LIST targets)
      set(found "${folder}")
    endif()
  endforeach()
  set(${out} "${found}" PARENT_SCOPE)
endfunction()

function(cbtd_check_layers)
  foreach(row IN LISTS CBTD_LAYERS)
    string(REPLACE ":" ";" kv "${row}")
    list(GET kv 0 folder)
    list(LENGTH kv n)
    set(allowed "")
    if(n GREATER 1)
      list(GET kv 1 allowed)
      string(REPLACE "," ";" allowed "${allowed}")
    endif()
    list(APPEND allowed "${folder}")
    foreach(trow IN LISTS CBTD_LAYER_TARGETS)
      if(NOT trow MATCHES "^${folder}:")
        continue()
      endif()
      string(REPLACE "${folder}:" "" targets "${trow}")
      string(REPLACE "," ";" targets "${targets}")
      foreach(t IN LISTS targets)
        if(NOT TARGET ${t})
          continue()  # not built in this configuration (CBTD_RADOS)
        endif()
        get_target_property(deps ${t} LINK_LIBRARIES)
        foreach(dep IN LISTS deps)
          if(NOT dep MATCHES "^cbtd_")
            continue()
          endif()
          _cbtd_layer_of(${dep} dep_folder)
          if(dep_folder STREQUAL "" OR dep_folder IN_LIST allowed)
            continue()
          endif()
          message(FATAL_ERROR
            "${t} (${folder}/) links ${dep} (${dep_folder}/), but ${folder}/ "
            "may depend only on: ${allowed} (cmake/layers.cmake, "
            "docs/architecture.md)")
        endforeach()
      endforeach()
    endforeach()
  endforeach()
endfunction()
