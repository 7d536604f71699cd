// The store copies whole rows into caller buffers and stack scratch; zeroing locals buys nothing.
[module: System.Runtime.CompilerServices.SkipLocalsInit]
