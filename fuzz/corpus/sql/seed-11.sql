   ;  ; -- only comments
;/* */;