"""数据质量通报: what each department's delivery looked like, night by night (issue 19)."""
