# The Debian package (cpack -G DEB): the programs, their man pages, the
# systemd units and timers, and the documentation and contrib files under
# /usr/share/doc/engagement. tests/package/run.sh builds it, installs it
# with dpkg and runs what it installed.

# systemd units, with the programs' installed path (the contrib files name
# /usr/local/bin, cmake's default prefix, for a copy by hand).
set(ENG_UNIT_DIR "lib/systemd/system" CACHE STRING
    "where the systemd units go, below the install prefix")
file(GLOB ENG_UNITS CONFIGURE_DEPENDS
     "${CMAKE_SOURCE_DIR}/contrib/systemd/*.service"
     "${CMAKE_SOURCE_DIR}/contrib/systemd/*.timer")
foreach(unit IN LISTS ENG_UNITS)
  get_filename_component(name "${unit}" NAME)
  file(READ "${unit}" text)
  string(REPLACE "/usr/local/bin/" "${CMAKE_INSTALL_FULL_BINDIR}/" text "${text}")
  file(WRITE "${CMAKE_BINARY_DIR}/systemd/${name}" "${text}")
  install(FILES "${CMAKE_BINARY_DIR}/systemd/${name}" DESTINATION "${ENG_UNIT_DIR}")
endforeach()

install(FILES README.md crontab.example docs/runbook.md docs/DECISIONS.md
        DESTINATION "${CMAKE_INSTALL_DOCDIR}")
install(DIRECTORY contrib/ DESTINATION "${CMAKE_INSTALL_DOCDIR}/contrib")

set(CPACK_PACKAGE_NAME engagement)
set(CPACK_PACKAGE_VENDOR "engagement")
set(CPACK_PACKAGE_CONTACT "engagement maintainers <engagement@example.com>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "re-engagement jobs of a WhatsApp assistant on PostgreSQL")
set(CPACK_PACKAGE_DESCRIPTION
    "Small programs, run by cron or systemd timers, that say goodbye to people\n\
quiet for 14 days, queue weekly reviews, deliver messages through the\n\
WhatsApp Cloud API, receive its webhook, keep opt-outs in step from every\n\
channel and publish every change through a transactional outbox; migrate\n\
owns the schema and engagement-status tells the operator how it all stands.")
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON) # libpq5, libcurl, jansson, ssl, microhttpd
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql-client, pgbouncer, nginx, prometheus-node-exporter")
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://example.com/engagement")
set(CPACK_STRIP_FILES ON)
include(CPack)
