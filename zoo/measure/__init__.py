"""Measure: counting (params, FLOPs, memory), timing, benchmarks against peers, and the docs tables made
from them."""
from .authors import AUTHORS, authors_model
from .benchmark import BenchmarkRow, benchmark, from_csv, markdown_table, to_csv, to_markdown
from .counting import count_flops, count_params, peak_memory
from .forms import (FORMS, PEER_FORMS, PEERS, RUNTIMES, ChannelsLast, Unchecked, Unfused, build_in_form,
                    timm_equivalent)
from .large_kernel import LARGE_KERNEL_SHAPES, KernelRow, kernel_table_markdown, large_kernel_table
from .timing import cpu_name, gemm_peak, measure_latency

__all__ = ['AUTHORS', 'BenchmarkRow', 'ChannelsLast', 'FORMS', 'KernelRow', 'LARGE_KERNEL_SHAPES', 'PEERS',
           'PEER_FORMS', 'RUNTIMES', 'Unchecked', 'Unfused', 'authors_model', 'benchmark', 'build_in_form',
           'count_flops', 'count_params', 'cpu_name', 'from_csv', 'gemm_peak', 'kernel_table_markdown',
           'large_kernel_table', 'markdown_table', 'measure_latency', 'peak_memory', 'timm_equivalent', 'to_csv',
           'to_markdown']
