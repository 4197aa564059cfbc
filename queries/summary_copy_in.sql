COPY {relation} ({columns}) FROM STDIN (FORMAT binary)
