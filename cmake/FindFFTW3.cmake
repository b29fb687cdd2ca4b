# FindFFTW3: FFTW 3 through pkg-config (Debian ships no CMake config for it).
#
# Components: double (fftw3), float (fftw3f), long_double (fftw3l). Default: double.
# Defines FFTW3_FOUND, FFTW3_VERSION and the imported targets FFTW3::fftw3, FFTW3::fftw3f, FFTW3::fftw3l.

find_package(PkgConfig QUIET)

if(NOT FFTW3_FIND_COMPONENTS)
  set(FFTW3_FIND_COMPONENTS double)
endif()

set(_fftw3_double_module fftw3)
set(_fftw3_float_module fftw3f)
set(_fftw3_long_double_module fftw3l)

foreach(_component IN LISTS FFTW3_FIND_COMPONENTS)
  set(_module "${_fftw3_${_component}_module}")
  if(NOT _module)
    message(FATAL_ERROR "FindFFTW3: unknown component '${_component}' (use double, float, long_double)")
  endif()
  set(FFTW3_${_component}_FOUND FALSE)
  if(TARGET FFTW3::${_module})
    set(FFTW3_${_component}_FOUND TRUE)
  elseif(PKG_CONFIG_FOUND)
    pkg_check_modules(_FFTW3_${_component} QUIET IMPORTED_TARGET GLOBAL ${_module})
    if(_FFTW3_${_component}_FOUND)
      add_library(FFTW3::${_module} INTERFACE IMPORTED GLOBAL)
      target_link_libraries(FFTW3::${_module} INTERFACE PkgConfig::_FFTW3_${_component})
      set(FFTW3_${_component}_FOUND TRUE)
      set(FFTW3_VERSION "${_FFTW3_${_component}_VERSION}")
    endif()
  endif()
endforeach()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(FFTW3 HANDLE_COMPONENTS VERSION_VAR FFTW3_VERSION
  REQUIRED_VARS PKG_CONFIG_FOUND)
